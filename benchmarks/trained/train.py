"""Train the example models whose parity, timings and parallel-in-time verdict the report shows
on weights a model learned, not only at initialisation. Nothing is downloaded: the data ship
inside installed packages.

- torch nn.RNN(tanh), nn.LSTM and nn.GRU, 1 -> 64 units, a Linear(64 -> 1) on the last step
  (Adam, cosine learning rate, the epoch with the lowest validation loss kept):
  one-step-ahead forecast of a neuron's membrane potential (matplotlib's sample data
  `membrane.dat`, 12000 float32 samples), windows of 64, standardised by the training part,
  the first 80% (chronological) for training and the rest for validation. The baseline to
  beat is persistence (the next value = the last one).
- Keras SimpleRNN(64) -> Dense(10, softmax) (the seed article's model): scikit-learn's 8x8
  digits (1797 images) read as 8 steps of 8 pixels, a seeded 80/20 split; chance is 10%.

Each model is saved before training (NAME_init) and after (NAME), as TorchScript or .keras,
and exported to ONNX (torch.onnx, TorchScript path; tf2onnx, whose SimpleRNN is a Loop), into
benchmarks/trained/models/. What training did is written to results/trained/training.json
(kind "rnnbench-training", typed in harness/records/training.py): the data, the split, every
epoch's losses, the final validation loss beside its baseline, and the files.
Run: python benchmarks/trained/train.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(__file__).resolve().parent / "models"
RESULT = ROOT / "results" / "trained" / "training.json"
WINDOW, HIDDEN, SEED = 64, 64, 0
TORCH = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
EPOCHS, BATCH, LR = 8, 64, 3e-3
KERAS_EPOCHS = 40


def membrane() -> tuple[np.ndarray, str]:
    """The membrane potential series, and where it came from."""
    import matplotlib.cbook as cbook

    path = cbook.get_sample_data("membrane.dat", asfileobj=False)
    return np.fromfile(path, np.float32).astype(np.float64), "matplotlib sample_data/membrane.dat"


def windows(series: np.ndarray, split: float = 0.8):
    """(x_train, y_train, x_val, y_val, stats): windows of WINDOW steps and the next value,
    standardised by the training part's mean and std; validation windows start after it."""
    cut = int(len(series) * split)
    mean, std = float(series[:cut].mean()), float(series[:cut].std())
    z = ((series - mean) / std).astype(np.float32)

    def make(start, stop):
        idx = np.arange(start, stop - WINDOW)
        x = np.stack([z[i : i + WINDOW] for i in idx])[..., None]
        return x, z[idx + WINDOW][:, None]

    x_train, y_train = make(0, cut)
    x_val, y_val = make(cut, len(z))
    return x_train, y_train, x_val, y_val, {"mean": mean, "std": std, "cut": cut}


def train_torch(cell: str, data) -> dict:
    import torch
    from torch import nn

    x_train, y_train, x_val, y_val, _ = data
    torch.manual_seed(SEED)

    class Forecaster(nn.Module):
        def __init__(self):
            super().__init__()
            kind = getattr(nn, TORCH[cell])
            self.rnn = kind(1, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, 1)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    model = Forecaster()
    name = f"{cell}_membrane"
    _save_torch(model, MODELS / f"{name}_init.pt", x_train[:2])
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS)
    generator = torch.Generator().manual_seed(SEED)
    history, started, best = [], time.perf_counter(), (float("inf"), None)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            optimizer.zero_grad()
            loss = torch.mean((model(xt[batch]) - yt[batch]) ** 2)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(batch)
        schedule.step()
        model.eval()
        with torch.no_grad():
            val = torch.mean((model(xv) - yv) ** 2).item()
        history.append({"epoch": epoch + 1, "train_mse": total / len(xt), "val_mse": val})
        print(f"{name} epoch {epoch + 1}: train {total / len(xt):.4f}, val {val:.4f}")
        if val < best[0]:
            best = (val, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])  # the epoch with the lowest validation loss
    _save_torch(model, MODELS / f"{name}.pt", x_train[:2])
    _export_torch(model, MODELS / f"{name}.onnx", x_train[:2])
    baseline = float(np.mean((x_val[:, -1] - y_val) ** 2))
    return {
        "name": name,
        "framework": "torch",
        "model": f"nn.{TORCH[cell]}(1, {HIDDEN}, batch_first=True) -> Linear({HIDDEN}, 1) "
        "on the last step",
        "task": "one-step-ahead forecast of the standardised membrane potential",
        "loss": "mean squared error (standardised units)",
        "epochs": EPOCHS,
        "optimizer": f"Adam lr {LR} (cosine to 0), batch {BATCH}, gradients clipped at norm 1; "
        "the epoch with the lowest validation loss kept",
        "history": history,
        "val_loss": best[0],
        "baseline": {"name": "persistence (next = last)", "val_loss": baseline},
        "seconds": time.perf_counter() - started,
        "files": _files(name, ".pt"),
    }


def _save_torch(model, path: Path, example) -> None:
    import torch

    model.eval()
    torch.jit.save(torch.jit.script(model), str(path))


def _export_torch(model, path: Path, example) -> None:
    import torch

    from backends.onnx_export import quiet_export

    x = torch.from_numpy(example)
    with quiet_export():
        torch.onnx.export(
            model.eval(),
            (x,),
            str(path),
            input_names=["x"],
            output_names=["forecast"],
            dynamic_axes={"x": {0: "B", 1: "T"}},
            opset_version=17,
            dynamo=False,
        )


def train_keras() -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from sklearn.datasets import load_digits

    from backends.tf_model import keras, tf

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)  # [N, 8 rows, 8 pixels]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    cut = int(0.8 * len(x))
    train, val = order[:cut], order[cut:]
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((None, 8)),
            keras.layers.SimpleRNN(HIDDEN),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    name = "srnn_digits"
    model.save(MODELS / f"{name}_init.keras")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    fit = model.fit(
        x[train],
        y[train],
        validation_data=(x[val], y[val]),
        epochs=KERAS_EPOCHS,
        batch_size=32,
        verbose=0,
        shuffle=True,
    )
    seconds = time.perf_counter() - started
    model.save(MODELS / f"{name}.keras")
    _export_keras(model, MODELS / f"{name}.onnx", tf)
    h = fit.history
    history = [
        {
            "epoch": e + 1,
            "train_loss": h["loss"][e],
            "val_loss": h["val_loss"][e],
            "val_accuracy": h["val_accuracy"][e],
        }
        for e in range(KERAS_EPOCHS)
    ]
    print(f"{name}: val loss {h['val_loss'][-1]:.4f}, val accuracy {h['val_accuracy'][-1]:.3f}")
    return {
        "name": name,
        "framework": "keras",
        "model": f"SimpleRNN({HIDDEN}) -> Dense(10, softmax)",
        "task": "classify sklearn's 8x8 digits read as 8 steps of 8 pixels",
        "loss": "sparse categorical cross-entropy",
        "epochs": KERAS_EPOCHS,
        "optimizer": "Adam lr 0.001, batch 32",
        "history": history,
        "val_loss": h["val_loss"][-1],
        "val_accuracy": h["val_accuracy"][-1],
        "baseline": {"name": "chance (uniform over 10 classes)", "val_loss": float(np.log(10))},
        "seconds": seconds,
        "files": _files(name, ".keras"),
    }


def _export_keras(model, path: Path, tf) -> None:
    import tf2onnx

    from backends.onnx_export import quiet_export
    from backends.tf_model import keras
    from harness.quiet import native_stderr_captured

    x = keras.Input((None, 8), name="x")
    functional = keras.Model(x, model(x))  # tf2onnx needs a functional model
    signature = [tf.TensorSpec((None, None, 8), tf.float32, name="x")]
    with quiet_export(), native_stderr_captured():
        tf2onnx.convert.from_keras(
            functional, input_signature=signature, opset=17, output_path=str(path)
        )


def _files(name: str, suffix: str) -> dict[str, str]:
    rel = MODELS.relative_to(ROOT)
    return {
        "initial": str(rel / f"{name}_init{suffix}"),
        "trained": str(rel / f"{name}{suffix}"),
        "onnx": str(rel / f"{name}.onnx"),
    }


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from harness.atomic import write_text_atomic
    from harness.machine.environment import collect_environment
    from harness.records.training import TrainingDocument, dumps

    environment = collect_environment()  # before the models are written: the commit's state
    MODELS.mkdir(parents=True, exist_ok=True)
    series, source = membrane()
    data = windows(series)
    models = [train_torch(cell, data) for cell in TORCH]
    models.append(train_keras())
    x_train, _, x_val, _, split = data
    document = {
        "kind": "rnnbench-training",
        "schema_version": 1,
        "environment": environment,
        "data": {
            "membrane": {
                "source": source,
                "samples": len(series),
                "window": WINDOW,
                "train_windows": len(x_train),
                "val_windows": len(x_val),
                "split": "chronological, first 80% for training",
                **split,
            },
            "digits": {
                "source": "sklearn.datasets.load_digits (shipped with scikit-learn)",
                "samples": 1797,
                "split": f"seeded permutation (seed {SEED}), 80/20",
            },
        },
        "models": models,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    # validated as the report reads it (harness/records/training.py) before it is written
    write_text_atomic(RESULT, dumps(TrainingDocument.model_validate(document)))
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
