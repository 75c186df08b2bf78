"""Pixels to vectors: face engines and image embedders. Pure compute: arrays in, arrays out."""
