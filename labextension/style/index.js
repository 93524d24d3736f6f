import './base.css';
import './panel.css';
import './run.css';
import './timeline.css';
import './actions.css';
