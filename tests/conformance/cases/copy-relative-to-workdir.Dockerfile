FROM busybox
WORKDIR /w
COPY hello.txt rel/
COPY exec.sh .
