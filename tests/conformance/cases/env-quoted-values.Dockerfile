FROM busybox
ENV Q="two words" S='$NOT_EXPANDED' T=a\ b U=\$HOME
RUN echo "$Q|$S|$T|$U" > /out
