FROM scratch
COPY hello.txt /
COPY dir /dir
ENV K=v
