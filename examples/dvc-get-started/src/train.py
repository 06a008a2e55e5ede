"""Fit a random forest on the training features; pickle it."""

import os
import pickle
import sys

import numpy as np
import yaml
from sklearn.ensemble import RandomForestClassifier


def train(seed, n_est, min_split, matrix):
    """Train a random forest classifier (column 1 of the matrix is the label, 2.. the features)."""
    labels = np.squeeze(matrix[:, 1].toarray())
    x = matrix[:, 2:]

    sys.stderr.write(f"Input matrix size {matrix.shape}\n")
    sys.stderr.write(f"X matrix size {x.shape}\n")
    sys.stderr.write(f"Y matrix size {labels.shape}\n")

    clf = RandomForestClassifier(n_estimators=n_est, min_samples_split=min_split, n_jobs=1, random_state=seed)

    clf.fit(x, labels)

    return clf


def main():
    with open("params.yaml") as fd:
        params = yaml.safe_load(fd)["train"]

    if len(sys.argv) != 3:
        sys.stderr.write("Arguments error. Usage:\n")
        sys.stderr.write("\tpython train.py features model\n")
        sys.exit(1)

    input = sys.argv[1]
    output = sys.argv[2]
    seed = params["seed"]
    n_est = params["n_est"]
    min_split = params["min_split"]

    # Load the data
    with open(os.path.join(input, "train.pkl"), "rb") as fd:
        matrix, _ = pickle.load(fd)

    clf = train(seed=seed, n_est=n_est, min_split=min_split, matrix=matrix)

    # Save the model
    with open(output, "wb") as fd:
        pickle.dump(clf, fd)


if __name__ == "__main__":
    main()
