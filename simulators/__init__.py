"""A simulated tower: a radiometric world and devices that speak the real protocols."""
