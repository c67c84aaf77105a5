"""`python predict.py --checkpoint runs/x/best.pth ...` is `mmdigits predict ...`."""

import sys

from mmdigits.cli import app

if __name__ == "__main__":
    app(args=["predict", *sys.argv[1:]], prog_name="python predict.py")
