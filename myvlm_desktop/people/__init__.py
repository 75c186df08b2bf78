"""Face and image clusters, the FAISS index, naming operations and the undo log."""
