FROM busybox AS parent
ONBUILD COPY hello.txt /from-onbuild/
ONBUILD ENV OB=1
ONBUILD WORKDIR /obwd
FROM parent AS child
RUN echo "$OB" > out
FROM child
RUN pwd > /out
