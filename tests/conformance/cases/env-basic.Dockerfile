FROM busybox
ENV A=1
ENV B $A-legacy
RUN echo "$A $B" > /out
