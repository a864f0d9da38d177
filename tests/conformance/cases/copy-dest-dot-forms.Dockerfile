FROM busybox
WORKDIR /w
COPY hello.txt ./
COPY exec.sh ./x/.
COPY dir/a.txt ../up.txt
COPY private.txt /w/./y/
