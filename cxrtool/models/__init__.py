"""The three models of the paper (autoencoder, DenseNet121 classifier, joint AECNN) and one create/load function."""
