"""`python predict.py --checkpoint runs/x/best.pth ...` is `mmdigits predict ...`."""

from mmdigits.cli import run

if __name__ == "__main__":
    run(only="predict")
