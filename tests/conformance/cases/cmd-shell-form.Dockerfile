FROM busybox
CMD echo hello "$HOME"
