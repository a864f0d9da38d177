FROM busybox
ENV A b c   d
ENV B "quoted  legacy"
LABEL empty= other=""
RUN echo "$A|$B" > /out
