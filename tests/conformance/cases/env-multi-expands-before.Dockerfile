FROM busybox
ENV A=1 B=${A}2 D="${A}!"
ENV A=3 E=$A F="$A $B"
RUN echo "$A|$B|$D|$E|$F" > /out
