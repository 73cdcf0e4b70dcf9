"""The seed example, reproduced with nncore.

nncore grew from a snippet that ran a tiny 2 -> 3 -> 1 network in NumPy: a hidden layer with
relu, an output with sigmoid, weights stored as ``W`` of shape (in, out) so that a layer is
``act(x @ W + b)``. The original snippet's numbers are not preserved, so the weights below
are nncore's reconstruction of that seed example: explicit, self-contained values in the same
layout.

This script
  1. runs the NumPy network and the same network built with nncore (float64, the same W1, b1,
     W2, b2 assigned into the layers) and shows that they agree (tests assert 1e-12);
  2. changes one weight by hand (``layer.W[i, j] = ...``, the memory the compiled code uses)
     and shows the output move exactly as the NumPy network's does;
  3. trains the network on a small task (the four points of XOR).

Run it with ``python examples/seed_network.py``.
"""

import numpy as np

import nncore as nn

# The seed network: 2 inputs -> 3 hidden units (relu) -> 1 output (sigmoid).
W1 = np.array([[0.6, -0.4, 0.7],
               [-0.5, 0.8, 0.6]])          # (in=2, out=3)
b1 = np.array([0.1, 0.1, -0.3])            # (3,)
W2 = np.array([[0.7],
               [-1.2],
               [0.4]])                     # (in=3, out=1)
b2 = np.array([0.05])                      # (1,)

# The four inputs of a 2-bit truth table.
X = np.array([[0.0, 0.0],
              [0.0, 1.0],
              [1.0, 0.0],
              [1.0, 1.0]])
Y_XOR = np.array([[0.0], [1.0], [1.0], [0.0]])


def numpy_forward(X, W1, b1, W2, b2):
    """The seed snippet's forward pass in plain NumPy."""
    h = np.maximum(X @ W1 + b1, 0.0)           # relu
    return 1.0 / (1.0 + np.exp(-(h @ W2 + b2)))  # sigmoid


def build_model():
    """The same network in nncore, float64, with W1, b1, W2, b2 copied into its layers."""
    model = nn.Sequential([
        nn.Dense(2, 3, activation="relu"),
        nn.Dense(3, 1, activation="sigmoid"),
    ], dtype="float64", seed=0)
    hidden, output = model.layers
    hidden.W = W1            # assignment copies into the layer's existing array
    hidden.b = b1
    output.W[...] = W2       # in-place writes work just as well
    output.b[...] = b2
    return model


def main():
    np.set_printoptions(precision=6, suppress=True)
    model = build_model()
    y_np = numpy_forward(X, W1, b1, W2, b2)
    y_nn = model.predict(X)
    print("1. the seed network, NumPy vs nncore")
    print("   NumPy :", y_np.ravel())
    print("   nncore:", y_nn.ravel())
    print(f"   largest difference: {np.max(np.abs(y_np - y_nn)):.2e}")

    print("\n2. change one weight by hand: output.W[1, 0] = -0.2 (was -1.2)")
    output = model.layers[1]
    output.W[1, 0] = -0.2
    W2_changed = W2.copy()
    W2_changed[1, 0] = -0.2
    y_moved = model.predict(X)
    print("   nncore:", y_moved.ravel())
    print("   NumPy :", numpy_forward(X, W1, b1, W2_changed, b2).ravel())
    print("   moved by", (y_moved - y_nn).ravel())

    print("\n3. train it on XOR (mse on the sigmoid output, Adam)")
    model = build_model()
    model.compile(optimizer=nn.Adam(lr=0.05), loss="mse")
    history = model.fit(X, Y_XOR, epochs=500, batch_size=4, verbose=0)
    print(f"   loss: {history.history['loss'][0]:.4f} -> {history.history['loss'][-1]:.4f}")
    print("   outputs:", model.predict(X).ravel(), " targets:", Y_XOR.ravel())
    print("   the trained weights, still plain arrays: W1 =\n", model.layers[0].W)
    return model


if __name__ == "__main__":
    main()
