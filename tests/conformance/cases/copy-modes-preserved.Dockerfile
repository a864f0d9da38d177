FROM busybox
COPY exec.sh private.txt setuid-bin /m/
