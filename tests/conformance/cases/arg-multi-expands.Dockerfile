FROM busybox
ARG A=1 B=${A}2 C="${A}!"
ARG A=3 D=$A
RUN echo "$A|$B|$C|$D" > /out
