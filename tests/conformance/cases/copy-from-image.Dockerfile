FROM busybox
COPY --from=busybox /bin/busybox /bb
COPY --from=busybox /etc/passwd /etc/group /copied/
