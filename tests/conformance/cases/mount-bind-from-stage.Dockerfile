FROM busybox AS src
RUN mkdir /s && echo from-stage > /s/f
FROM busybox
RUN --mount=type=bind,from=src,source=/s,target=/mnt/src cat /mnt/src/f > /out
