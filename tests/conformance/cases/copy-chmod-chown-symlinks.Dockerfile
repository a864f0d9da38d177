FROM busybox
COPY --chmod=600 links /lk
COPY --chown=1000:1000 links /lk2
COPY --chown=1000:1000 --chmod=0755 hard /hd
