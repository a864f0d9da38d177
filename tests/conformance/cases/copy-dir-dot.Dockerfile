FROM busybox
COPY dir/. /dot/
COPY dir/sub/./ /dot2
COPY ./hello.txt ./x/../y/
