"""The latent codec and the classic baselines it is compared against (resize, JPEG, WebP, JPEG 2000)."""
