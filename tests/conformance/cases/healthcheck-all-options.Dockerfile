FROM busybox
HEALTHCHECK --interval=10s --timeout=3s --start-period=2m --retries=1 CMD echo x
