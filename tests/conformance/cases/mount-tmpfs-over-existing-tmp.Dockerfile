FROM busybox
RUN --mount=type=tmpfs,target=/tmp echo x > /tmp/x && ls /tmp > /out
RUN --mount=type=cache,target=/home/app stat -c "%a %u %g %n" /home /home/app > /out2
