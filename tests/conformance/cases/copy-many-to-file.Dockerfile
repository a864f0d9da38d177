FROM busybox
COPY hello.txt exec.sh /notadir
