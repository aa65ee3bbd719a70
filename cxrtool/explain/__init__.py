"""Where a model looks: Grad-CAM heatmaps in original-image pixels (`explain`), scored against ChestX-ray14's
radiologist boxes (`localize`), and paired comparisons of two models' localization (`compare`)."""
