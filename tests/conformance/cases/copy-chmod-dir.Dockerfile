FROM busybox
COPY --chmod=600 dir /dst
COPY --chmod=755 dir /dst2/
