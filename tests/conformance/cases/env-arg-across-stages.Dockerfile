ARG G=g1
FROM busybox AS a
ARG G
ENV FROM_A=$G
FROM a AS b
ARG G=g2
RUN echo "$FROM_A $G" > /out
FROM b
# (a RUN here is written "RUN |1 G=g2 ..." in history since dockerfile 1.9, c7c2f0e97,
# which llbook follows; dockerd 20.10's v0.8 writes no args)
ENV SEEN=$G
