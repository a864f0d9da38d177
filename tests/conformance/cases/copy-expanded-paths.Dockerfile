FROM busybox
ARG SRC=hello.txt
ENV DST=/expanded
COPY $SRC ${DST}/${SRC}.copy
