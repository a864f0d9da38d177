FROM busybox
RUN --mount=type=tmpfs,target=/tmp echo x > /tmp/x && ls /tmp > /out
RUN --mount=type=cache,target=/home/app ls -la /home > /out2
