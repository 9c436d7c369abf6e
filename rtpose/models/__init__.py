"""Network architectures that map a BGR image to PAF and part heatmaps at stride 8."""
