"""ISO images: pycdlib index (reader), distribution profiles, the library in the state dir."""
