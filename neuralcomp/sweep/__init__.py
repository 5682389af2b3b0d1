"""The TBPTT study at any scale: sweep files, trials (one `neuralcomp train` run each) on Ray Tune,
and the paper's tables from the results."""
