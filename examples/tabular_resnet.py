"""The two baselines of "Revisiting Deep Learning Models for Tabular Data" (Gorishniy et al.,
2021), built with nncore, on two data sets that ship with scikit-learn:

* MLP:    (Dense -> ReLU -> Dropout) x n_blocks -> Dense
* ResNet: Dense -> (x + Dropout(Dense(Dropout(ReLU(Dense(Norm(x))))))) x n_blocks
          -> Norm -> ReLU -> Dense

``load_diabetes`` (442 patients, regression, trained with the Huber loss) and
``load_breast_cancer`` (569 tumours, binary classification, cross-entropy with label
smoothing), features standardised on the training split. Both models get the same width,
depth, optimizer (AdamW with a linear warm-up), and the paper's protocol: training stops
when the loss on a validation split (20% of the training rows) has not improved for 16
epochs, and the best epoch's weights are kept. The script prints the test R^2 / accuracy of
each. Run it with ``python examples/tabular_resnet.py`` (``--quick``: at most 8 epochs).
"""

import argparse

import numpy as np

import nncore as nn


def mlp(d_in, d_out, width=64, n_blocks=2, dropout=0.1, seed=0):
    layers, n = [], d_in
    for _ in range(n_blocks):
        layers += [nn.Dense(n, width, activation="relu"), nn.Dropout(dropout)]
        n = width
    return nn.Sequential(layers + [nn.Dense(n, d_out)], seed=seed)


def resnet(d_in, d_out, width=64, hidden=128, n_blocks=2, dropout=0.1, norm=nn.BatchNorm,
           seed=0):
    blocks = [nn.Residual([norm(width), nn.Dense(width, hidden, activation="relu"),
                           nn.Dropout(dropout), nn.Dense(hidden, width), nn.Dropout(dropout)])
              for _ in range(n_blocks)]
    return nn.Sequential([nn.Dense(d_in, width), *blocks, norm(width),
                          nn.Activation("relu"), nn.Dense(width, d_out)], seed=seed)


def split(X, y, seed=0, test=0.25):
    X_tr, X_te, y_tr, y_te = nn.datasets.train_test_split(X, y, test_size=test, seed=seed)
    mu, sd = X_tr.mean(axis=0), X_tr.std(axis=0) + 1e-12
    return (X_tr - mu) / sd, (X_te - mu) / sd, y_tr, y_te


def fit(model, X, y, loss, epochs):
    opt = nn.AdamW(lr=1e-3, weight_decay=1e-4, schedule=nn.LinearLR(0.1, total_iters=5))
    model.compile(opt, loss)
    stop = nn.EarlyStopping("val_loss", patience=16, restore_best_weights=True)
    model.fit(X, y, epochs=epochs, batch_size=32, validation_split=0.2, callbacks=[stop],
              verbose=0)
    return model


def diabetes(epochs):
    from sklearn.datasets import load_diabetes
    X, y = load_diabetes(return_X_y=True)
    X_tr, X_te, y_tr, y_te = split(X, y)
    mu, sd = y_tr.mean(), y_tr.std()  # the target standardised too: Huber's delta is in sd
    out = {}
    for name, build in (("MLP", mlp), ("ResNet", resnet)):
        model = fit(build(X.shape[1], 1), X_tr, (y_tr - mu) / sd, nn.Huber(delta=1.0), epochs)
        pred = model.predict(X_te)[:, 0] * sd + mu
        out[name] = 1 - np.sum((pred - y_te) ** 2) / np.sum((y_te - y_te.mean()) ** 2)
    return out


def breast_cancer(epochs):
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = split(X, y)
    out = {}
    for name, build in (("MLP", mlp), ("ResNet", resnet)):
        model = fit(build(X.shape[1], 2), X_tr, y_tr, nn.CrossEntropy(label_smoothing=0.1),
                    epochs)
        out[name] = float(np.mean(model.predict(X_te).argmax(axis=1) == y_te))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=300, help="at most (default 300)")
    ap.add_argument("--quick", action="store_true", help="8 epochs")
    args = ap.parse_args(argv)
    epochs = 8 if args.quick else args.epochs
    results = {"diabetes (test R^2, Huber loss)": diabetes(epochs),
               "breast_cancer (test accuracy)": breast_cancer(epochs)}
    for task, scores in results.items():
        print(f"{task}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return results


if __name__ == "__main__":
    main()
