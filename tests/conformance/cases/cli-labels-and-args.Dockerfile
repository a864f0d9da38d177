FROM busybox
ARG X=default
LABEL fromfile=1
RUN echo "$X" > /out
#conformance: args=--label cli=yes --label fromfile=cli --build-arg X=cli
