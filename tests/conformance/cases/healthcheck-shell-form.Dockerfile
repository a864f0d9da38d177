FROM busybox
SHELL ["/bin/sh", "-xc"]
HEALTHCHECK --interval=1m30s --timeout=500ms CMD wget -q localhost || exit 1
