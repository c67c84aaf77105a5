"""`python train.py --model cnn_rnn_linear ...` is `mmdigits train --model cnn_rnn_linear ...`."""

from mmdigits.cli import run

if __name__ == "__main__":
    run(only="train")
