"""Physics: geometry and units, probe, scan positions, rotation, multislice, noise, operator H_θ."""
