"""Prediction: checkpoints + test files -> the Kaggle submission, or one real picture and
recording -> the digit; and turning such a pair into the competition's vectors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdigits.artifacts import writable_file
from mmdigits.checkpoint import load_ensemble
from mmdigits.data import TEST_AUDIO, TEST_IMAGE, load_test
from mmdigits.errors import UsageError
from mmdigits.inference import ensemble_probabilities, unlike_training
from mmdigits.submission import write_probabilities, write_submission


@dataclass
class Submission:
    path: Path
    predictions: np.ndarray  # (M,) digits in test-file order
    members: int  # models averaged
    warnings: list[str]  # test inputs unlike the training data (inference.unlike_training)


def predict_pair(checkpoints: list[Path], image: Path, audio: Path, device: str, tta: bool) -> np.ndarray:
    """(10,) class probabilities of one real picture + recording, averaged over the ensemble."""
    from mmdigits.features import featurize_pair  # scipy.ndimage: 0.3 s that predicting a test set never needs

    models, torch_device = load_ensemble(checkpoints, device)
    image_vector, audio_vector = featurize_pair(image, audio)
    image_batch, audio_batch = image_vector.reshape(1, 28, 28), audio_vector.reshape(1, 39, 13)
    return ensemble_probabilities(models, image_batch, audio_batch, torch_device, tta=tta)[0].numpy()


def predict_test(
    checkpoints: list[Path],
    data: Path,
    out: Path,
    label_column: str = "label",
    probabilities_csv: Path | None = None,
    tta: bool = False,
    device: str = "auto",
) -> Submission:
    """Average the ensemble's probabilities on the test files; write the submission (and the
    probabilities); an existing submission is replaced only once the new one is complete, and
    neither file is touched where either path is refused."""
    out = writable_file(out)
    if probabilities_csv is not None:
        probabilities_csv = writable_file(probabilities_csv)
        if probabilities_csv.resolve() == out.resolve():  # the probabilities would replace the submission
            raise UsageError(f"--probs {probabilities_csv}: the submission's own file (--out); give another")
    models, torch_device = load_ensemble(checkpoints, device)
    test = load_test(data)
    probabilities = ensemble_probabilities(models, test.image, test.audio, torch_device, tta=tta).numpy()
    predictions = probabilities.argmax(axis=1)
    write_submission(out, predictions, label_column)
    if probabilities_csv is not None:
        write_probabilities(probabilities_csv, probabilities)
    warnings = unlike_training(models[0], test.image, test.audio, (TEST_IMAGE, TEST_AUDIO))
    return Submission(Path(out), predictions, len(models), warnings)
