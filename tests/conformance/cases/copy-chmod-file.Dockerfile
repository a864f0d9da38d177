FROM busybox
COPY --chmod=0600 hello.txt exec.sh /p/
