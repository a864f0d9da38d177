FROM busybox
COPY nomatch* /nm/
COPY hello.txt nomatch* /nm2/
