"""Package data: the spoken-digit MFCC table built by tools/build_spoken_digits.py."""
