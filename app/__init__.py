"""The interactive PyQt6 demo: a label/sketch canvas with the original and the compressed
generator's outputs side by side. The only package that may import Qt (it uses `engines`)."""
