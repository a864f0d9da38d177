FROM busybox
COPY hello.txt exec.sh dir /multi/
