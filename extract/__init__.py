"""Stage 1: end-to-end training of video backbones on long videos (AdaptFocus) and feature export."""
