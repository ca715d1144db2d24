"""`vmscale demo`: the original student experiment, done for real and reported."""
