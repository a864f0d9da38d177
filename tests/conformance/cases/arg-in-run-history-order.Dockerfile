FROM busybox
ARG Z=z
ARG A=a
ENV M=m
ARG Z=z2
RUN echo "$Z$A$M" > /out
#conformance: args=--build-arg A=cli
