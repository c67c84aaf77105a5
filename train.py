"""`python train.py --model cnn_rnn_linear ...` is `mmdigits train --model cnn_rnn_linear ...`."""

import sys

from mmdigits.cli import app

if __name__ == "__main__":
    app(args=["train", *sys.argv[1:]], prog_name="python train.py")
