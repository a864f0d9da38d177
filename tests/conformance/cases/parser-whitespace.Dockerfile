FROM busybox
RUN echo a \   
    b > /out
	 RUN	echo   tabbed    >   /out2   
ENV A ""
LABEL k="x=y" q="multi\
  line"
onbuild run echo lower
RUN echo trailing   
