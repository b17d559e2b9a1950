"""What a file a user hands rnnbench may make it allocate, checked before anything is read: the
memory budget and the refusal that never falls back (limits.py), and zip archives and .npy
headers sized before they are opened (archive.py). Below everything that reads a user's file
(harness/onnx, harness/model_file, harness/model's weights, backends' readers); it imports only
harness/model/errors.py."""
