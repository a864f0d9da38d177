FROM busybox
RUN --mount=type=tmpfs,target=/deep/er/mnt true
