FROM busybox AS first
RUN echo first > /f
FROM first AS mid
RUN echo mid > /m
FROM mid
RUN echo last > /l
#conformance: args=--target mid
