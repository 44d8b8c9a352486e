"""The benchmark grid runner (`jftzoo bench`): grid, runner, results store, reports, heatmap."""
