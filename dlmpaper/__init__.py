"""dlmpaper: reproducible companion to *On the Role of Discreteness in Diffusion LLMs*
(Jin, Wang, Lin, Bing, Sun; arXiv 2512.22630).

The package holds all logic; the numbered notebooks in ``notebooks/`` only wire it
together and explain. See the README for the two commands that regenerate every
figure and run every test.
"""

__version__ = "0.1.0"
